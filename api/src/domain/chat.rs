//! Chat: what a message sent through the API may be.

use serde_json::{Map, Value};

use super::fields::{self, FieldErrors, Invalid};

/// Longest chat message sent through the API.
pub const MAX_MESSAGE_CHARS: usize = 5000;
/// Longest `breakout_id`.
pub const MAX_BREAKOUT_ID_CHARS: usize = 64;

/// A validated chat message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatInput {
    pub message: String,
    pub breakout_id: Option<String>,
}

/// Reads `{"message", "breakout_id"?}`.
pub fn input(body: &Map<String, Value>) -> Result<ChatInput, Invalid> {
    let mut errors = FieldErrors::new();
    let message = fields::text(body, "message", MAX_MESSAGE_CHARS, &mut errors);
    let breakout_id = fields::opt_text(body, "breakout_id", MAX_BREAKOUT_ID_CHARS, &mut errors);
    fields::check(errors)?;
    Ok(ChatInput {
        message: message.unwrap_or_default(),
        breakout_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn message_body() {
        let ok = input(json!({"message": "hi", "extra": 1}).as_object().unwrap()).unwrap();
        assert_eq!(ok.message, "hi");
        assert_eq!(ok.breakout_id, None);
        let e = input(
            json!({"message": " ", "breakout_id": 3})
                .as_object()
                .unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "breakout_id: must be a string or null; message: must not be empty"
        );
    }
}
