"""Mini-program channels (WeChat, Alipay): login, phone number and notices behind one adapter interface."""
