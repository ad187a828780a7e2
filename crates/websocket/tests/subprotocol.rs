//! `Sec-WebSocket-Protocol` both ways, with tokio-tungstenite's client,
//! which checks the answer as a browser does: offered `notify.v1`, the
//! tuned and the plain versions choose it and push as always; offered only
//! a protocol the server does not speak (the `chat` of the classic
//! write-ups), the server names none and the client fails the handshake.

use notify_test_support::{Pushed, TestConfig, TestServer, ws_next};
use notify_websocket::{PATH, PLAIN_PATH, SUBPROTOCOL, WsConfig};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{Error, ProtocolError, SubProtocolError};

async fn server() -> TestServer {
    TestServer::start_with(TestConfig::default(), |ctx| {
        notify_websocket::standalone(ctx, WsConfig::default()).1
    })
    .await
}

async fn offering(
    server: &TestServer,
    path: &str,
    protocols: &str,
) -> Result<notify_test_support::WsClient, Error> {
    let mut request = server.ws_url(path).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocols.parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, response)| {
            assert_eq!(
                response.headers()["sec-websocket-protocol"],
                SUBPROTOCOL,
                "the chosen protocol"
            );
            ws
        })
}

#[tokio::test]
async fn offered_notify_v1_is_chosen_and_the_push_is_as_always() {
    let server = server().await;
    for path in [PATH, PLAIN_PATH] {
        for offer in ["notify.v1", "chat, notify.v1"] {
            let mut ws = offering(&server, path, offer).await.unwrap();
            assert!(
                matches!(ws_next(&mut ws).await.unwrap(), Some(Pushed::Hello { .. })),
                "{path}, offered {offer}"
            );
        }
    }
}

#[tokio::test]
async fn offered_only_a_protocol_it_does_not_speak_the_client_fails() {
    let server = server().await;
    for path in [PATH, PLAIN_PATH] {
        let refused = offering(&server, path, "chat").await;
        assert!(
            matches!(
                refused,
                Err(Error::Protocol(
                    ProtocolError::SecWebSocketSubProtocolError(SubProtocolError::NoSubProtocol)
                ))
            ),
            "{path}: {:?}",
            refused.map(|_| ())
        );
    }
}
