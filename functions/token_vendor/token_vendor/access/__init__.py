"""Access: who may have which scope (caller policy, identity as proven)."""
