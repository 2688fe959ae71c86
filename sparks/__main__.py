from sparks.cli import main

main()
