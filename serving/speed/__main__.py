"""`python -m serving.speed`: the speed layer (serving/speed/consumer.py)."""

from serving.speed.consumer import main

main()
