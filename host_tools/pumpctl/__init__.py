"""pumpctl: the host CLI for dosekit pumps (real boards and the virtual board)."""
