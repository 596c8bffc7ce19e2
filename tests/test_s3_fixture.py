import pyarrow as pa
import pyarrow.parquet as pq

from raystack.io.s3 import arrow_s3_filesystem, parse_s3_uri, s3_client


def test_boto3_and_arrow_reach_local_server(s3_bucket):
    client = s3_client()
    client.put_object(Bucket=s3_bucket, Key="a/b.txt", Body=b"hello")
    assert client.get_object(Bucket=s3_bucket, Key="a/b.txt")["Body"].read() == b"hello"
    fs = arrow_s3_filesystem()
    pq.write_table(pa.table({"x": [1, 2]}), f"{s3_bucket}/t.parquet", filesystem=fs)
    assert pq.read_table(f"{s3_bucket}/t.parquet", filesystem=fs)["x"].to_pylist() == [1, 2]
    assert parse_s3_uri(f"s3://{s3_bucket}/a/b.txt") == (s3_bucket, "a/b.txt")
