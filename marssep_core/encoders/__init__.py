"""ImageBind-compatible tri-modal encoder, preprocessing, tokenizers, alignment losses, MLBP fusion."""
