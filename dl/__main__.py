from dl.cli import main

main()
