"""mixbin package."""
