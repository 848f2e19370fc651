from agora.cli.main import main

main()
