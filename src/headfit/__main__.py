from headfit.cli import main

main()
