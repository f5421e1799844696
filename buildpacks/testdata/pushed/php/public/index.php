<?php echo "hello from php";
