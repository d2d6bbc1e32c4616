from noisyctl.cli import main

main()
