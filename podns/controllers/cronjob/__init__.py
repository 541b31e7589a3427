"""CronJob controller: Jobs on a cron schedule, with concurrency policies and history."""
