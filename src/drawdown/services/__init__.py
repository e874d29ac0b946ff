"""What the API does, one transaction at a time: the rules applied to what the store holds."""
