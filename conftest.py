import os

pytest_plugins = ["careloop_shared.testing"]

# A test run creates (and deletes) a few hundred topics; six partitions each keep a 2-core broker busy
# long after the run, slowing the next. Two still exercise several partitions per topic.
os.environ.setdefault("CARELOOP_TOPIC_PARTITIONS", "2")
