"""Symbolic music: piano rolls, scores in and out (MIDI, MusicXML) and the rules that guide them."""
