"""The vend protocol, composed: vending -> retirement -> fleet lease -> minting; the scheduled refresh."""
