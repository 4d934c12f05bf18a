"""The kernel: errors (one tree), settings, scopes, deadline, the shapes that pass between wings."""
