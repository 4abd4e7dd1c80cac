"""Fault injection, properties and overlap: evidence that failures leave stores intact."""
