"""Adapters to what the vendor talks to: AWS, AIC, and deadline-bounded HTTP."""
