"""The ConnectyCube HTTP client: the only code that speaks to ConnectyCube."""
