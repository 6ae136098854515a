//! Chat prompts: renders the model's Jinja chat template with `minijinja`.

use crate::error::{LlamaError, Result};
use serde::Serialize;

/// One chat message.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// ChatML, used when a model has no template of its own.
pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Llama 2 chat format (`[INST]`, `<<SYS>>`), for SentencePiece models
/// whose GGUF has no template.
pub const LLAMA2: &str = "{% if messages[0]['role'] == 'system' %}{% set sys = '<<SYS>>\n' + messages[0]['content'] + '\n<</SYS>>\n\n' %}{% set msgs = messages[1:] %}{% else %}{% set sys = '' %}{% set msgs = messages %}{% endif %}{% for m in msgs %}{% if m['role'] == 'user' %}{{ bos_token + '[INST] ' + (sys if loop.first else '') + m['content'] | trim + ' [/INST]' }}{% else %}{{ ' ' + m['content'] | trim + ' ' + eos_token }}{% endif %}{% endfor %}";

/// The template to use when a model ships none: Llama 2's for
/// SentencePiece vocabularies (they have `</s>` rather than ChatML markers),
/// ChatML otherwise.
pub fn default_template(tok: &crate::tokenizer::Tokenizer) -> &'static str {
    let eos = tok.eos_id.and_then(|i| tok.token_text(i));
    if eos.as_deref() == Some("</s>") {
        LLAMA2
    } else {
        CHATML
    }
}

/// Renders `template` for `messages`, with the variables HF templates expect
/// (`messages`, `add_generation_prompt`, `bos_token`, `eos_token`) and the
/// Python string methods they call (`.strip()`, ...).
pub fn render(
    template: &str,
    messages: &[Message],
    bos_token: &str,
    eos_token: &str,
    add_generation_prompt: bool,
) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    env.add_function("strftime_now", |_fmt: String| -> String {
        "26 Jul 2024".to_string()
    });
    env.add_template("chat", template)
        .map_err(|e| LlamaError::Template(e.to_string()))?;
    let tmpl = env
        .get_template("chat")
        .map_err(|e| LlamaError::Template(e.to_string()))?;
    tmpl.render(minijinja::context! {
        messages => messages,
        add_generation_prompt => add_generation_prompt,
        bos_token => bos_token,
        eos_token => eos_token,
    })
    .map_err(|e| LlamaError::Template(e.to_string()))
}
