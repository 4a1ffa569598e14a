"""Applications built on ported models: speech transcription (Whisper), and more."""
