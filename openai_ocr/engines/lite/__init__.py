"""The lite engine: a CPU OCR engine whose models ship inside wheels."""
