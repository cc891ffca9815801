"""Effects: what casedesk's decisions do outside it (the card processor, webhooks)."""
