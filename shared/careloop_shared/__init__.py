"""careloop platform kernel: what every service needs the same way."""
