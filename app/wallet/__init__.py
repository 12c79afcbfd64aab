"""Electronic license wallet (电子证照): issuance, presentation, verification, status lists."""
