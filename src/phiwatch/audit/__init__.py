"""Configuration audit: find an exposure in a server's configuration before anyone can scan it.

One module per configuration kind (samba, vsftpd, proftpd, rsyncd, exports, ganesha, nginx,
apache, orthanc, dcmqrscp, s3docs), the walker that recognises and bounds them, the S3
account audit (s3account) and the outputs (report). Findings use the scan's catalog and ids
where both describe the same weakness, plus a location (path, line) and the lines to change.
"""
