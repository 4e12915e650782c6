@echo off
rem Windows: the README's test command.
py -3 dev.py test %*
