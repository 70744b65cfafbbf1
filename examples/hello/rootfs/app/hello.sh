#!/bin/sh
echo "hello from the enclave"
