"""The bottom layer: media and files on a local disk or S3, and nothing about what they mean.

Modules: ``s3`` (boto3 and pyarrow S3 clients from the standard AWS environment),
``fileroot`` (:class:`FileRoot`, atomic whole-file writes under a local folder or an S3
prefix, shared by the store and training runs), ``cache`` (the S3 download cache:
videos and frame folders fetched once, size-capped), ``ranged`` (ranged and small whole
reads of S3 objects, for probing). It imports nothing from raystack but the leaf modules
``errors``, ``retry`` and ``media``.

    from raystack.io.fileroot import FileRoot
    FileRoot("s3://bucket/store").put("notes/a.json", b"{}")
"""
