"""Run by tests/storage/test_s3.py: a writer on the S3 server that is SIGKILLed mid-upload.

argv: endpoint bucket/prefix-of-the-table-data. It completes one data file (as a writer that
dies between publishing a file and committing it would), then starts a second one, writes
past the first multipart part (which is uploaded), prints "uploading" and waits to be killed.
"""

import sys
import time

import pyarrow.fs as pafs

from samplestore.storage import ArrowStorage
from samplestore.table.writer import data_file_name

endpoint, data_dir = sys.argv[1], sys.argv[2]
# Parts upload in the foreground: once the writes return, the first part is stored (moto
# dates every upload 2010-11-10, so GC's grace period rests on the time of its last part there).
storage = ArrowStorage(pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1",
                                         background_writes=False))
done = storage.open_write(storage.join(data_dir, data_file_name(None)))
done.write(b"a complete file no commit references")
done.publish()
dying = storage.open_write(storage.join(data_dir, data_file_name(None)))
for _ in range(3):
    dying.write(b"\0" * (6 << 20))  # 18 MiB: past the first 10 MiB part, which is uploaded
print(done.path, dying.path, "uploading", flush=True)
time.sleep(120)
