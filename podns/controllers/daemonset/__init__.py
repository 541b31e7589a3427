"""DaemonSet controller: one pod per matching node, rolling updates."""
