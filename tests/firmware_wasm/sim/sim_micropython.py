"""Simulated ``micropython``: records kbd_intr so sim_board knows whether 0x03 interrupts."""
import sim_board


def const(x):
    return x


def kbd_intr(char):
    sim_board.board.kbd_intr_char = char
