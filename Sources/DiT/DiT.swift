// DiT module
