"""One function per pipeline step: what a stage in stages/ calls with its params sections.

A step reads its inputs, runs the library, and writes its outputs atomically. Training steps
resume from their checkpoint when rerun after being stopped.
"""
