"""Local providers: an LLM, speech-to-text and text-to-speech that run on this machine."""
