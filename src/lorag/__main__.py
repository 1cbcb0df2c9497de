from lorag.cli import main

main()
