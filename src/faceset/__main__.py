from faceset.cli import main

main()
