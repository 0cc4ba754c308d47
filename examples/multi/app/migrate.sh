#!/bin/sh
# A oneshot: runs once before web starts (web depends_on migrate); its exit 0
# makes it "exited" (and web's dependency ready), a failure would be retried.
echo "applying migrations 001..003"
sleep 0.3
echo "schema is at version 3"
