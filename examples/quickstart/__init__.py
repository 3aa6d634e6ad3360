"""The README's core example: one module, served with ``citadel serve examples.quickstart.bank:app --dev``."""
