"""Hardware outputs and inputs: the door relay, exit button and door contact (gpiozero)."""
