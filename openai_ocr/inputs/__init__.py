"""Inputs: bytes in (images, multi-frame TIFFs, PDFs), validated pages out."""
