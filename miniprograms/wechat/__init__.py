"""WeChat mini-program server API client and open-data decryption."""
