"""AWS: the token table and its item format, envelope, key source, bounded client, KMS, STS proof."""
