"""Creators, fans, brands and their API keys."""
