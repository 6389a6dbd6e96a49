"""characterize package."""
