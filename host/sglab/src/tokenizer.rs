//! A Hugging Face `tokenizer.json` as the workload's tokenizer, for exact
//! text token counts against a real model.

use std::path::Path;

use sglab_core::workload::{TokenCount, Tokenizer};

/// A loaded `tokenizer.json`.
pub struct HfTokenizer(tokenizers::Tokenizer);

impl HfTokenizer {
    /// Loads `path` (a `tokenizer.json`, or a directory holding one).
    pub fn load(path: &Path) -> Result<Self, String> {
        let file = if path.is_dir() { path.join("tokenizer.json") } else { path.to_path_buf() };
        tokenizers::Tokenizer::from_file(&file).map(Self).map_err(|e| format!("cannot load {}: {e}", file.display()))
    }
}

impl Tokenizer for HfTokenizer {
    fn encode(&self, text: &str) -> Vec<u32> {
        self.0.encode(text, false).map(|e| e.get_ids().to_vec()).unwrap_or_default()
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.0.decode(ids, true).unwrap_or_default()
    }

    fn count(&self) -> TokenCount {
        TokenCount::Tokenizer
    }
}
