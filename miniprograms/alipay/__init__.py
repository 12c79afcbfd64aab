"""Alipay open-platform gateway client, RSA2 signing and AES content encryption."""
