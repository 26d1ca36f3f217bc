"""The local runtime: template.yaml's resources in an AWS emulator, its HTTP API on a local
port and its event sources as pollers, calling the same handlers Lambda calls. Not deployed."""
