"""The local stack: moto in server mode, the AIC stand-in and the signed API front, all on loopback."""
