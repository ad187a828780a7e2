//! What several of the combined server's test files share.

use notify_server::{TransportConfig, Transports};
use notify_test_support::{TestConfig, TestServer};

/// The combined server on a loopback port with `config`, and handles on its
/// transports (their counts, the lab, the wire log).
pub async fn combined(config: TestConfig) -> (TestServer, Transports) {
    let mut handles = None;
    let server = TestServer::start_with(config, |ctx| {
        let (transports, route) = notify_server::router(ctx, TransportConfig::default());
        handles = Some(transports);
        route
    })
    .await;
    (server, handles.expect("the router was built"))
}
