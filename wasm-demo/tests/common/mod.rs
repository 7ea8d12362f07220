//! What the wasm-bindgen test files share.

use js_sys::Error;
use wasm_bindgen::{JsCast, JsValue};

/// The message of a refusal, which the glue throws as a JavaScript `Error`.
pub(crate) fn message(error: JsValue) -> String {
    error
        .dyn_into::<Error>()
        .expect("refusals are thrown as Error objects")
        .message()
        .into()
}
