//! Any bytes as a publish body: parsing finds the text serde_json sees in
//! `{"text": ...}`, or answers 400 `invalid_body`, and never panics.
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run publish_body`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    match notify_http::parse_publish_body(bytes) {
        Ok(text) => {
            let value: serde_json::Value =
                serde_json::from_slice(bytes).expect("a parsed body is JSON");
            assert_eq!(value["text"].as_str(), Some(text.as_str()));
        }
        Err(err) => {
            let (status, code) = err.status_and_code();
            assert_eq!((status.as_u16(), code), (400, "invalid_body"));
        }
    }
});
