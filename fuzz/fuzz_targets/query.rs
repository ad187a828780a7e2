//! Any string as a query: the cursor and bounded numbers parse, or answer
//! 400 `bad_query`, and never panic.
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run query`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use notify_http::Query;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = format!("/api/poll?{query}").parse::<http::Uri>() else {
        return;
    };
    let query = Query::from_uri(&uri);
    let bad_query = |err: notify_http::ApiError| {
        let (status, code) = err.status_and_code();
        assert_eq!((status.as_u16(), code), (400, "bad_query"));
    };
    match query.cursor() {
        Ok(Some(cursor)) => {
            if let Some(epoch) = &cursor.epoch {
                let epoch = epoch.as_str();
                assert!((1..=64).contains(&epoch.len()), "{epoch:?}");
                assert!(
                    epoch
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                    "{epoch:?}"
                );
            }
        }
        Ok(None) => {}
        Err(err) => bad_query(err),
    }
    match query.number_in("timeout", 0..=60) {
        Ok(Some(timeout)) => assert!(timeout <= 60),
        Ok(None) => {}
        Err(err) => bad_query(err),
    }
});
